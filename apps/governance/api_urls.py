app_name = "governance-api"

urlpatterns = []
