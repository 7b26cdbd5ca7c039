"""Approval policies: the policy file's format and its checks, loading and exporting it, and
which policy decides a request.

- `spec`: the format (pydantic models) and the checks that need nothing but the file;
- `yaml_reader`: the file's YAML read within limits (size, keys given twice, aliases);
- `database_checks`: what the file asks that the database cannot give (users, groups, ties);
- `loading`: a file into the database, all or nothing, and the database back into a file;
- `matching`: the most specific policy covering a (model, target), and a row read back as a spec.
"""
