"""DICOM networking with pynetdicom: SCPs, Q/R and print SCUs. No Qt here."""
