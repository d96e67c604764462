from __future__ import annotations

from django.urls import path

from tests.django_app import views

urlpatterns = [path("items", views.items)]
