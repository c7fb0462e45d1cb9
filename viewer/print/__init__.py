"""Film layout, print jobs and paper/PDF output. No Qt here."""
