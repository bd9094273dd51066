"""Unit tests of snapbuild's Python front end (run by frontend_test.go)."""
