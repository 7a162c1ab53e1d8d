#!/usr/bin/env bash
# Build (once) the Debian 12 image the fleet hosts run, and the offline mirror they install from.
#   tests/ansible/fleet/image.sh            # prints the cache dir; builds only when missing
# Output under $FLEET_CACHE (default /var/cache/netops-fleet)/<key>/, where <key> is a hash of
# this file, packages.txt and pyproject.toml's dependencies: change any and the next run
# rebuilds; older builds are removed.
#   rootfs.tar     the image, imported into podman as localhost/netops-fleet:<key>
#   apt/           a flat apt repository (Packages.gz) of every .deb the roles install, with
#                  their dependencies, resolved against this very image (bookworm, -updates,
#                  -security, as the machine's Debian mirror serves them today)
#   wheels/        netops' dependencies as wheels for the hosts' Python (3.11), for pip
# No image registry is needed: debootstrap fetches from the Debian mirror apt already uses.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
cache="${FLEET_CACHE:-/var/cache/netops-fleet}"
# netops' runtime dependencies (the wheels the hosts need) are part of the recipe too
deps="$(python3 - "$repo/pyproject.toml" <<'PY'
import sys, tomllib
print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]))
PY
)"
key="$( { cat "$here/image.sh" "$here/packages.txt"; printf '%s\n' "$deps"; } | sha256sum | cut -c1-16)"
out="$cache/$key"
if [ -f "$out/done" ]; then
    echo "$out"
    exit 0
fi
mkdir -p "$cache"
# pip for the wheels: the repository's virtualenv (made by scripts/test.sh), else the system's
py="$repo/.venv/bin/python"
[ -x "$py" ] || py=python3
# old recipes' builds
find "$cache" -mindepth 1 -maxdepth 1 -type d ! -name "$key" -exec rm -rf {} +
work="$cache/$key.tmp"
rm -rf "$work"
mkdir -p "$work"
root="$work/root"
mirror="$(awk '/^URIs:/ {print $2; exit} /^deb / {print $2; exit}' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null | head -n1)"
mirror="${mirror:-http://deb.debian.org/debian}"
security="$(grep -rhE '^(URIs:|deb )' /etc/apt/sources.list.d/ /etc/apt/sources.list 2>/dev/null | grep -oE 'https?://[^ ]+-security' | head -n1 || true)"
security="${security:-${mirror%/debian}/debian-security}"
{
echo "== debootstrap bookworm from $mirror" >&2
debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,openssh-server,python3,sudo,ca-certificates \
    bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }

cat >"$root/etc/apt/sources.list" <<SRC
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
SRC
mount --bind /proc "$root/proc"
cp /etc/resolv.conf "$root/etc/resolv.conf"
cleanup() { umount "$root/proc" 2>/dev/null || true; }
trap cleanup EXIT
echo "== bring the image up to date, download the roles' packages" >&2
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get -q update >/dev/null
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get -q -y dist-upgrade >/dev/null
# what the hosts install later, with every dependency not in the image, as .debs
chroot "$root" apt-get clean
# shellcheck disable=SC2046
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get -q -y --no-install-recommends --download-only \
    install $(grep -vE '^\s*(#|$)' "$here/packages.txt") >/dev/null
mkdir -p "$work/apt"
mv "$root"/var/cache/apt/archives/*.deb "$work/apt/"
(cd "$work/apt" && dpkg-scanpackages --multiversion . /dev/null 2>/dev/null | gzip -9 > Packages.gz)
chroot "$root" apt-get clean
umount "$root/proc"
trap - EXIT

echo "== configure the image" >&2
# apt: only the fleet's mirror on the gateway (the network has no route out)
gw="${FLEET_GATEWAY:-10.89.42.1}"
port="${FLEET_MIRROR_PORT:-8741}"
echo "deb [trusted=yes] http://$gw:$port/apt ./" >"$root/etc/apt/sources.list"
printf '[global]\nindex-url = http://%s:%s/wheels/simple/\ntrusted-host = %s\ntimeout = 10\n' "$gw" "$port" "$gw" >"$root/etc/pip.conf"
rm -f "$root/var/lib/apt/lists/"*_Packages "$root/var/lib/apt/lists/"*_InRelease "$root/var/lib/apt/lists/"*_Release*
# a deploy user reached with a key, passwordless sudo (as on a freshly provisioned VM)
chroot "$root" useradd -m -s /bin/bash deploy
echo 'deploy ALL=(ALL) NOPASSWD:ALL' >"$root/etc/sudoers.d/deploy"
chmod 0440 "$root/etc/sudoers.d/deploy"
mkdir -p "$root/home/deploy/.ssh"
chmod 0700 "$root/home/deploy/.ssh"
chroot "$root" chown -R deploy:deploy /home/deploy/.ssh
# host keys are made at first boot, so every host has its own
rm -f "$root"/etc/ssh/ssh_host_*
cat >"$root/etc/systemd/system/ssh-hostkeys.service" <<'UNIT'
[Unit]
Description=Generate this host's SSH host keys
Before=ssh.service
[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A
[Install]
WantedBy=multi-user.target
UNIT
ln -s /etc/systemd/system/ssh-hostkeys.service "$root/etc/systemd/system/multi-user.target.wants/ssh-hostkeys.service"
# the key is given at container start (authorized_keys from the scenario's key pair)
printf 'PasswordAuthentication no\nUseDNS no\n' >"$root/etc/ssh/sshd_config.d/fleet.conf"
# what a container's systemd cannot or need not run
for unit in systemd-networkd-wait-online.service getty@tty1.service console-getty.service systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer; do
    ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
: >"$root/etc/machine-id"
rm -f "$root/etc/resolv.conf" "$root/etc/hostname"
echo "== pack the image" >&2
tar -C "$root" --numeric-owner -cf "$work/rootfs.tar" .
rm -rf "$root"

echo "== wheels of netops' dependencies (for the hosts' Python $(python3 -c 'import sys; print(sys.version.split()[0])'))" >&2
printf '%s\n' "$deps" >"$work/requirements.txt"
"$py" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
    --python-version 3.11 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 --platform any \
    -d "$work/wheels/files" -r "$work/requirements.txt"
# pip itself and setuptools for the venv's pip (the hosts never reach PyPI)
"$py" -m pip download --quiet --disable-pip-version-check --only-binary=:all: --no-deps \
    --python-version 3.11 -d "$work/wheels/files" pip setuptools wheel
# a PEP 503 "simple" index: one directory per normalised project name
python3 - "$work/wheels" <<'PY'
import os, re, sys, html
base = sys.argv[1]
files = sorted(os.listdir(os.path.join(base, "files")))
projects = {}
for f in files:
    name = re.sub(r"[-_.]+", "-", f.split("-")[0]).lower()
    projects.setdefault(name, []).append(f)
os.makedirs(os.path.join(base, "simple"), exist_ok=True)
with open(os.path.join(base, "simple", "index.html"), "w") as idx:
    idx.write("<html><body>\n")
    for name, fs in sorted(projects.items()):
        d = os.path.join(base, "simple", name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "index.html"), "w") as page:
            page.write("<html><body>\n")
            for f in fs:
                page.write(f'<a href="../../files/{html.escape(f)}">{html.escape(f)}</a><br>\n')
            page.write("</body></html>\n")
        idx.write(f'<a href="{name}/">{name}</a><br>\n')
    idx.write("</body></html>\n")
PY
} 
touch "$work/done"
rm -rf "$out"
mv "$work" "$out"
echo "$out"
