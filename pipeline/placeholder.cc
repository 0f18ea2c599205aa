namespace shortfall::pipeline {}
