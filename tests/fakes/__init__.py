"""Test doubles that speak real protocols (HTTP, the Sandbox contract), reusable by every tier."""
