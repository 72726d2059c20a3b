// Who took part in a shared decision (docs/design/thrive-framework.md, "Shared decision making").
CodeSystem: SdmParticipant
Id: sdm-participant
Title: "Shared decision participants"
Description: "Who took part in a shared decision about a young person's THRIVE grouping or plan."
* insert LocalCodeSystem
* #young-person "Young person" "The child or young person the decision is about."
* #parent-carer "Parent or carer" "A parent, carer or other adult with parental responsibility or a caring role."
* #clinician "Clinician" "A health professional working with the young person, such as a CAMHS clinician, school nurse or mental health support team practitioner."
* #school "School or college" "Staff from the young person's school or college."
* #social-care "Children's social care" "A worker from children's social care."
* #youth-justice "Youth justice" "A worker from the youth justice service."
* #voluntary-sector "Voluntary or community sector" "A worker from a charity or community organisation."
* #other-agency "Other agency" "Someone from another agency not listed here."
