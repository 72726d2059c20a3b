// Grouping labels as received from other systems and older material, normalised (docs/design/fhir-model.md 1.3).
//
// Normalisation: lower case; every run of characters other than a-z and 0-9 becomes one '-';
// leading and trailing '-' removed ("Getting Advice & Signposting" -> getting-advice-signposting).
// docs/design/fhir-model.md says "non-letters collapsed to '-'"; we keep digits too, otherwise "Quadrant 1" and
// "Quadrant 3" would both normalise to "quadrant" and could not even be told apart.
// thrive_fhir.terminology.normalise_label implements exactly this rule.
//
// Quadrant numbers: older four-grouping THRIVE diagrams show the four help groupings (Getting
// Advice/Coping, Getting Help, Getting More Help, Getting Risk Support) without Thriving, but
// docs/design/thrive-framework.md gives no numbering, and five-grouping sites number Thriving first. "Quadrant 1"
// could therefore mean Getting Advice or Thriving, so a number cannot be translated safely: the
// labels are listed here so that they get a specific error, and the ConceptMap maps them to nothing
// (equivalence unmatched). A site that confirms its numbering locally can add its own map.
CodeSystem: ThriveGroupingVariants
Id: thrive-grouping-variants
Title: "THRIVE grouping labels as received"
Description: "Normalised labels for THRIVE groupings seen in other systems and in older THRIVE material: the current displays, older names (Coping), youth-justice names (Getting Additional Help) and four-quadrant numbers. Source of the thrive-grouping-variants ConceptMap."
* insert LocalCodeSystem
* #thriving "Thriving" "The display of the Thriving grouping."
* #getting-advice-and-signposting "Getting Advice and Signposting" "The display of the Getting Advice and Signposting grouping."
* #getting-advice-signposting "Getting Advice & Signposting" "The display of the Getting Advice and Signposting grouping written with an ampersand."
* #getting-advice "Getting Advice" "Short name of the Getting Advice and Signposting grouping."
* #coping "Coping" "Name of the Getting Advice and Signposting grouping in older THRIVE material."
* #getting-help "Getting Help" "The display of the Getting Help grouping."
* #getting-more-help "Getting More Help" "The display of the Getting More Help grouping."
* #getting-additional-help "Getting Additional Help" "Youth justice KPI 4 name for the grouping believed to be Getting More Help."
* #getting-risk-support "Getting Risk Support" "The display of the Getting Risk Support grouping."
* #quadrant-1 "Quadrant 1" "A four-quadrant number from older THRIVE material. Ambiguous: not translated."
* #quadrant-2 "Quadrant 2" "A four-quadrant number from older THRIVE material. Ambiguous: not translated."
* #quadrant-3 "Quadrant 3" "A four-quadrant number from older THRIVE material. Ambiguous: not translated."
* #quadrant-4 "Quadrant 4" "A four-quadrant number from older THRIVE material. Ambiguous: not translated."
