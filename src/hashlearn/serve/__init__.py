"""hashlearn.serve: a JSON-over-HTTP search service for saved indexes (``hashlearn serve``)."""

from hashlearn.serve.server import SearchService, make_server

__all__ = ["SearchService", "make_server"]
