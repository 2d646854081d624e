"""The duty domain: phone numbers and the dial policy, weeks and shifts, the unit dial list,
roster import/export, seed data and the weekly reminder. See docs/architecture.md."""
