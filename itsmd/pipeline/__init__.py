"""The pipeline: stages that turn inbox deliveries into episodes (and later incidents, runs and pages)."""
