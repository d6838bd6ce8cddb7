"""The verification side: appraisal pipeline, gRPC service, store and landmark server."""
