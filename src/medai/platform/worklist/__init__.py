"""Studies as filed: the study record, its report versions as read, the worklist's order, readings
and the patient's context."""
