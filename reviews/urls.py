"""Review pages: the inbox, request pages and their actions, the audit trail, settings."""

app_name = "reviews"

urlpatterns: list = []
