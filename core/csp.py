"""Content-Security-Policy on every response (a small middleware; no extra dependency).

The pages load only their own static files: htmx, app.js, charts.js and plotly.min.js, with
chart data in `json_script` blocks (JSON, never run) and no inline script or event handler, so
scripts are limited to 'self'. Styles allow 'unsafe-inline': templates use style attributes and
plotly.js adds its own <style> rules at run time. The API's Swagger UI and Redoc pages
(drf-spectacular's templates) start with an inline script, so they get a policy that allows it.
"""

from django.conf import settings


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:  # a view may set its own
            docs = request.path.startswith(settings.CSP_API_DOCS_PATHS)
            policy = settings.CSP_API_DOCS if docs else settings.CONTENT_SECURITY_POLICY
            response["Content-Security-Policy"] = policy
        return response
