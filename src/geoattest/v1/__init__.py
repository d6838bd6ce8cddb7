"""Code generated from proto/geoattest/v1 by tools/codegen.py."""
