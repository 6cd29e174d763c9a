"""Tables, plots and the HTML report built from a results folder alone (see the reports issue)."""
