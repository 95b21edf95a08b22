"""URLs of the customers app, mounted by portal/urls.py under /staff/ (namespace "staff") and /app/
(namespace "customer"). Name them with an app prefix: names share each namespace."""

staff_urlpatterns: list = []
customer_urlpatterns: list = []
