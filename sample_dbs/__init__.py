"""Bundled sample SQLite databases, the script that builds them and their question/SQL pairs."""
