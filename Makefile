# Convenience wrappers around course.py (which needs only Python and pip).
PYTHON ?= python3

.PHONY: lab test bench setup
lab:
	$(PYTHON) course.py lab
test:
	$(PYTHON) course.py test
bench:
	$(PYTHON) course.py bench
setup:
	$(PYTHON) course.py setup
