"""Tests of the Django integration, with their own small project (project/)."""
