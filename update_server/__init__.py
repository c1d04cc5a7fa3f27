"""The vendor side: TUF repository and update server, PSIRT workflow, SLA
tracking, CSAF advisories and SBOMs."""
