"""The Bedrock proxy Lambda and the DynamoDB contract it shares with the portal. No Django here."""
