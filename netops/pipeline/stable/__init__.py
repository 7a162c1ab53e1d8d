"""The eight stable tables: phases derived from the catalog, the sync that pulls them in one transaction each, the change probe and the campus-link check."""
