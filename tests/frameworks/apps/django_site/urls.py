from __future__ import annotations

from django.urls import path

from tests.frameworks.apps.django_site import views

urlpatterns = [
    path("hello", views.hello),
    path("json", views.as_json),
    path("echo", views.echo),
    path("stream", views.stream),
    path("headers", views.headers),
    path("startup", views.startup_ran),
]
