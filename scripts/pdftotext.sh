#!/usr/bin/env bash
# Usage: scripts/pdftotext.sh
# Poppler's pdftotext, with which the audit report's test reads back the PDF it rendered
# (services/ctx/src/audit-report.int.spec.ts), pinned to POPPLER_DEBIAN_VERSION (versions.env).
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$REPO_ROOT/versions.env"
"$REPO_ROOT/scripts/apt-tool.sh" pdftotext "$POPPLER_DEBIAN_VERSION" poppler-utils
