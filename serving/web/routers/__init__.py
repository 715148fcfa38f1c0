"""The app's routes, one APIRouter per resource: for_you, goods, health (JSON), vibe (the page), tiles (SVG)."""
