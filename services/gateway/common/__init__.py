"""What every section of the gateway shares: state, owner requests, errors, pages, tables."""
