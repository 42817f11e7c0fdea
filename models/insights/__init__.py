"""Story 4-6: the call-centre profile, reminders, attribution and reports."""
