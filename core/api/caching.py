"""No copy of an API answer is kept by a browser, proxy or CDN.

API answers carry customers' private data, and the answers that create or rotate a token, or
generate a webhook signing secret, carry that secret in plain text the only time it is shown.
"""

from django.utils.cache import add_never_cache_headers

API_PREFIX = "/api/"


class ApiNoStoreMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.path.startswith(API_PREFIX):
            add_never_cache_headers(response)  # no-cache, no-store, must-revalidate, private
        return response
