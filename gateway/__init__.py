"""Balance Gateway: one GraphQL endpoint in front of African payment providers."""
