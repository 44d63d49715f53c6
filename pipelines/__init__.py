"""payrecon: payment reconciliation and fund accounting."""
