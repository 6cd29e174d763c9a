"""Tables, plots and the HTML report built from a results folder alone (results.jsonl is all they read)."""
