"""The web layer: the For You API, the vibe-check page and the goods' tiles, one FastAPI app (main.create_app)."""
