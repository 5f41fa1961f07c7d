"""The clinic's details the patient sees: name, phone, opening hours, the emergency line."""
