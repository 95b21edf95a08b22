# Models arrive with the billing issue.
