from django.contrib.auth.decorators import login_required
from django.http import HttpResponse

from .permissions import request_for_user


@login_required
def inbox(request):
    return HttpResponse("")


@login_required
def my_requests(request):
    return HttpResponse("")


@login_required
def request_detail(request, pk):
    return HttpResponse(str(request_for_user(request.user, pk)))
