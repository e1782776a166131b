"""Tests of the bundled demo: its catalog server, data and generator."""
