"""hashlearn.serve: the HTTP search service (FastAPI on uvicorn) behind ``hashlearn serve``.

- :mod:`~hashlearn.serve.service`: request logic, budget, writes (no HTTP)
- :mod:`~hashlearn.serve.app`: the FastAPI app (routes, API key, JSON errors)
- :mod:`~hashlearn.serve.protocol`: connection limits and timeouts under uvicorn
- :mod:`~hashlearn.serve.server`: bind a socket and run it all
"""

from hashlearn.serve.protocol import Limits
from hashlearn.serve.server import SearchServer, make_server
from hashlearn.serve.service import Budget, SearchService, ServiceError

__all__ = ["Budget", "Limits", "SearchServer", "SearchService", "ServiceError", "make_server"]
