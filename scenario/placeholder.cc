namespace shortfall::scenario {}
