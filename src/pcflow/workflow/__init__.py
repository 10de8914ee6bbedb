"""Snakemake-facing glue: what rules call, dry-run storage checks."""
