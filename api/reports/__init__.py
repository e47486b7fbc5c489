"""Reports for auditors (issue 11): the signed audit-log extract so far."""
