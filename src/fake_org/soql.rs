//! STUB (being replaced by its owner): the fake org's SOQL grammar.
