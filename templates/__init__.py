"""Jinja2 templates, shipped inside the package as generator.templates."""
