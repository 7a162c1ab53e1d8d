"""Word lists the generator draws from, so payloads read like real 42 data rather than noise."""

from __future__ import annotations

# (name, city, country, time_zone, language_id) — 60 campuses, the real network's flavour.
CAMPUSES: list[tuple[str, str, str, str, int]] = [
    ("Paris", "Paris", "France", "Europe/Paris", 1),
    ("Lyon", "Lyon", "France", "Europe/Paris", 1),
    ("Brussels", "Bruxelles", "Belgium", "Europe/Brussels", 1),
    ("Helsinki", "Helsinki", "Finland", "Europe/Helsinki", 2),
    ("Khouribga", "Khouribga", "Morocco", "Africa/Casablanca", 1),
    ("São-Paulo", "São Paulo", "Brazil", "America/Sao_Paulo", 11),
    ("Benguerir", "Benguerir", "Morocco", "Africa/Casablanca", 1),
    ("Madrid", "Madrid", "Spain", "Europe/Madrid", 11),
    ("Kazan", "Kazan", "Russia", "Europe/Moscow", 2),
    ("Quebec", "Québec", "Canada", "America/Toronto", 1),
    ("Tokyo", "Tokyo", "Japan", "Asia/Tokyo", 13),
    ("Moscow", "Moscow", "Russia", "Europe/Moscow", 2),
    ("Seoul", "Seoul", "South Korea", "Asia/Seoul", 14),
    ("Rome", "Roma", "Italy", "Europe/Rome", 5),
    ("Bangkok", "Bangkok", "Thailand", "Asia/Bangkok", 2),
    ("Amman", "Amman", "Jordan", "Asia/Amman", 2),
    ("Malaga", "Málaga", "Spain", "Europe/Madrid", 11),
    ("Nice", "Nice", "France", "Europe/Paris", 1),
    ("Abu Dhabi", "Abu Dhabi", "United Arab Emirates", "Asia/Dubai", 2),
    ("Wolfsburg", "Wolfsburg", "Germany", "Europe/Berlin", 6),
    ("Istanbul", "Istanbul", "Turkey", "Europe/Istanbul", 15),
    ("Kuala Lumpur", "Kuala Lumpur", "Malaysia", "Asia/Kuala_Lumpur", 2),
    ("Adelaide", "Adelaide", "Australia", "Australia/Adelaide", 2),
    ("Lausanne", "Lausanne", "Switzerland", "Europe/Zurich", 1),
    ("Mulhouse", "Mulhouse", "France", "Europe/Paris", 1),
    ("Lisboa", "Lisboa", "Portugal", "Europe/Lisbon", 12),
    ("Heilbronn", "Heilbronn", "Germany", "Europe/Berlin", 6),
    ("Urduliz", "Urduliz", "Spain", "Europe/Madrid", 11),
    ("42Network", "Paris", "France", "Europe/Paris", 1),
    ("Abu Dhabi Academy", "Abu Dhabi", "United Arab Emirates", "Asia/Dubai", 2),
    ("Prague", "Praha", "Czech Republic", "Europe/Prague", 2),
    ("London", "London", "United Kingdom", "Europe/London", 2),
    ("Barcelona", "Barcelona", "Spain", "Europe/Madrid", 11),
    ("Angoulême", "Angoulême", "France", "Europe/Paris", 1),
    ("Berlin", "Berlin", "Germany", "Europe/Berlin", 6),
    ("Le Havre", "Le Havre", "France", "Europe/Paris", 1),
    ("Florence", "Firenze", "Italy", "Europe/Rome", 5),
    ("Vienna", "Wien", "Austria", "Europe/Vienna", 6),
    ("Perpignan", "Perpignan", "France", "Europe/Paris", 1),
    ("Porto", "Porto", "Portugal", "Europe/Lisbon", 12),
    ("Tétouan", "Tétouan", "Morocco", "Africa/Casablanca", 1),
    ("Yerevan", "Yerevan", "Armenia", "Asia/Yerevan", 2),
    ("Warsaw", "Warszawa", "Poland", "Europe/Warsaw", 2),
    ("Beirut", "Beirut", "Lebanon", "Asia/Beirut", 2),
    ("Luxembourg", "Luxembourg", "Luxembourg", "Europe/Luxembourg", 1),
    ("Rabat", "Rabat", "Morocco", "Africa/Casablanca", 1),
    ("Singapore", "Singapore", "Singapore", "Asia/Singapore", 2),
    ("Antananarivo", "Antananarivo", "Madagascar", "Indian/Antananarivo", 1),
    ("Gyeongsan", "Gyeongsan", "South Korea", "Asia/Seoul", 14),
    ("Vienna Academy", "Wien", "Austria", "Europe/Vienna", 6),
    ("Rio de Janeiro", "Rio de Janeiro", "Brazil", "America/Sao_Paulo", 11),
    ("Belo Horizonte", "Belo Horizonte", "Brazil", "America/Sao_Paulo", 11),
    ("Lima", "Lima", "Peru", "America/Lima", 11),
    ("Santiago", "Santiago", "Chile", "America/Santiago", 11),
    ("Málaga Norte", "Málaga", "Spain", "Europe/Madrid", 11),
    ("Hamburg", "Hamburg", "Germany", "Europe/Berlin", 6),
    ("Mexico", "Ciudad de México", "Mexico", "America/Mexico_City", 11),
    ("Dakar", "Dakar", "Senegal", "Africa/Dakar", 1),
    ("Tallinn", "Tallinn", "Estonia", "Europe/Tallinn", 2),
    ("Gangwon", "Gangwon", "South Korea", "Asia/Seoul", 14),
]

LANGUAGES: dict[int, tuple[str, str]] = {
    1: ("Français", "fr"), 2: ("English", "en"), 5: ("Italiano", "it"), 6: ("Deutsch", "de"),
    11: ("Español", "es"), 12: ("Português", "pt"), 13: ("日本語", "ja"), 14: ("한국어", "ko"),
    15: ("Türkçe", "tr"),
}

PROJECT_WORDS_A = [
    "ft", "libft", "push", "mini", "net", "cub", "so", "philo", "fract", "pipe", "get", "born2",
    "inception", "webserv", "transcendence", "cpp", "exam", "python", "data", "ai", "unity",
    "mobile", "kfs", "malloc", "nm", "strace", "ssl", "matrix", "ready", "computor", "expert",
]
PROJECT_WORDS_B = [
    "printf", "swap", "shell", "talk", "3d", "long", "philosophers", "ol", "x", "next_line",
    "beroot", "module", "rank", "piscine", "system", "rt", "scop", "server", "container",
    "hypervisor", "sorting", "vector", "lab", "math", "engine", "tracer", "linker", "cipher",
]

FIRST_NAMES = [
    "Alice", "Bruno", "Chloé", "David", "Emma", "Farid", "Giulia", "Hugo", "Inès", "Jonas",
    "Karim", "Léa", "Mateo", "Nina", "Omar", "Paula", "Quentin", "Rania", "Sven", "Tomoko",
    "Ugo", "Valentina", "Wen", "Xavier", "Yasmine", "Zoé", "Aiko", "Björn", "Chen", "Dmitri",
    "Elif", "Fatou", "Gustavo", "Hana", "Ivan", "Jiwoo", "Kofi", "Lucía", "Malik", "Nour",
]
LAST_NAMES = [
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy",
    "Moreau", "Garcia", "Rossi", "Müller", "Schmidt", "Kim", "Lee", "Park", "Tanaka", "Sato",
    "Silva", "Santos", "Oliveira", "Nowak", "Kowalski", "Yilmaz", "Kaya", "Benali", "Haddad",
    "Ivanov", "Petrov", "Virtanen", "Korhonen", "Novak", "Horvat", "Jensen", "Hansen", "Lopez",
    "Fernandez", "Nguyen", "Tran",
]
MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december"]

COALITION_WORDS_A = ["The", "Order of", "House of", "Clan", "League of", "Guild of", "Circle of"]
COALITION_WORDS_B = [
    "Federation", "Alliance", "Assembly", "Order", "Wolves", "Ravens", "Titans", "Phoenix",
    "Dragons", "Krakens", "Foxes", "Owls", "Bears", "Lions", "Tigers", "Serpents", "Hawks",
    "Falcons", "Sharks", "Comets", "Storms", "Rangers", "Pirates", "Nomads", "Sages",
]
ACHIEVEMENT_WORDS = [
    "Welcome", "Bonus", "Perfectionist", "Code Explorer", "Film buff", "Home is where the code is",
    "Rigorous Basterd", "Attendee", "Curious", "Scholar", "Mentor", "Evaluator", "Speaker",
    "Marathon", "Sprinter", "Night owl", "Early bird", "Solver", "Architect", "Ambassador",
]

# Campus names the real achievements' `campus` lists hold that are no campus the simulator serves
# (docs/api.md "Real payloads": 74 distinct names, 20 of them not active/public campuses - with the
# simulator's 6 inactive/non-public campuses these 14 make 74, one with its real trailing space).
FOREIGN_CAMPUS_NAMES = [
    "Fremont", "Hack High School - Fremont ", "Silicon Valley", "Codam", "42 Test", "Piscine Online",
    "Bootcamp", "Zagreb Pilot", "Campus Zero", "Sandbox", "Old Paris", "Hive Pilot", "Pedago Lab",
    "42 Remote",
]

# Text the real API carries: emoji outside the BMP and embedded \n, \t, \r.
ODD_TEXT = ["🚀 Launch", "Code 🐍\nPython", "Tab\tseparated", "Windows line\r\nend", "🏆🏆 Trophy",
            "Night owl 🦉", "line one\nline two\rline three"]

OBJECTIVES = ["Unix", "Imperative programming", "Rigor", "Algorithms & AI", "Graphics", "Network & system administration",
              "Object-oriented programming", "Web", "Security", "Group & interpersonal", "Adaptation & creativity"]

#: cursus-21 skills as cursus_users list them
SKILLS = ("Algorithms & AI", "Unix", "Imperative programming", "Rigor", "Graphics", "Network & system administration",
          "Object-oriented programming", "Web", "Adaptation & creativity", "Group & interpersonal", "Security",
          "DB & Data", "Company experience", "Organization", "Functional programming", "Parallel computing")
