# Models arrive with the usage issue.
