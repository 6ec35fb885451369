"""Tests of djtrace's integrations, one package per integration."""
