"""Static kustomize pieces per delivery engine, shipped as generator.overlays."""
