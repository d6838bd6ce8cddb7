"""Code generated from proto/geoattest/v1 by geoattest.wire.codegen."""
