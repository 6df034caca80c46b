"""The study file: models, loading, validation, templates, the plan and its docs."""
