"""Measuring colourisers: the shared read -> colourise -> score runner, automatic evaluation, the hint curve,
multi-model benchmarks, their pictures, metrics and provenance."""
