// The five THRIVE needs-based groupings (docs/design/fhir-model.md 1.3).
// The groupings are NOT levels: no ordinal property, no hierarchy, never ordered by severity and
// never derived from a score. Other names seen in practice are designations (SNOMED "Synonym").
CodeSystem: ThriveGrouping
Id: thrive-grouping
Title: "THRIVE needs-based groupings"
Description: "The five needs-based groupings of the THRIVE Framework for system change (Wolpert et al., 2019). A grouping describes the need and the kind of help chosen with the young person and family, never a diagnosis or a severity. The codes are not ordered."
* insert LocalCodeSystem
* #thriving "Thriving" "Doing OK at the moment; what helps is universal promotion and prevention. No individual help is planned."
* #getting-advice "Getting Advice and Signposting" "Managing with advice, self-help, peer, community or online support and signposting to the local offer; no goal-based specialist help wanted or needed now."
* insert Synonym(getting-advice, Getting Advice)
* insert Synonym(getting-advice, Coping)
* #getting-help "Getting Help" "Short, focused, evidence-based help with aims agreed at the start and an agreed way of telling whether they are met."
* #getting-more-help "Getting More Help" "Longer, more intensive or more specialist evidence-based help, often across sectors, still with agreed aims and reviewed outcomes."
* insert Synonym(getting-more-help, Getting Additional Help)
* #getting-risk-support "Getting Risk Support" "Not benefiting from, or not able to use, help at present but still at risk; the work is keeping safe and sharing risk across agencies, not treatment."
