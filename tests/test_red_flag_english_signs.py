"""English signs read by the rules: 13 presentations in the ninth revision, written from
PRESENTATIONS.md before any English development text was read, the other eight (a threat to
someone else, cauda equina, a blocked bladder, pregnancy, eye, diabetic, head injury, sepsis) in
the tenth, and in the eleventh more of the ways short complaints tell six of them (stroke,
meningism, seizure, unconsciousness, thunderclap headache, suicide); each urgent wording beside
a look-alike in the same words that must stay quiet (denied, over, a blocked nose, a teenager
who will not get up for school, an idiom, a minor complaint of the same body part, no onset)."""

from __future__ import annotations

import pytest

from conftest import fired_flags


@pytest.mark.parametrize(
    "text,flag",
    [
        ("my dads face is drooping on one side", "stroke"),
        ("mum slurred speech suddenly", "stroke"),
        ("cant lift my arm, left side weak", "stroke"),
        ("i think my husband is having a stroke", "stroke"),
        ("worst headache of my life", "thunderclap_headache"),
        ("sudden severe headache like being hit", "thunderclap_headache"),
        ("fever and stiff neck", "meningism"),
        ("rash doesnt fade with glass test", "meningism"),
        ("having a seizure now", "seizure"),
        ("my son is fitting and wont stop", "seizure"),
        ("cant breathe", "respiratory_distress"),
        ("lips turning blue", "respiratory_distress"),
        ("chest pain going down my left arm", "acute_coronary"),
        ("crushing chest pain and sweating", "acute_coronary"),
        ("vomiting blood", "heavy_bleeding"),
        ("black tarry stool", "heavy_bleeding"),
        ("cut wont stop bleeding", "heavy_bleeding"),
        ("my grandad is unconscious", "altered_consciousness"),
        ("wife collapsed and not responding", "altered_consciousness"),
        ("i want to kill myself", "suicidal"),
        ("throat swelling after peanuts", "anaphylaxis"),
        ("toddler swallowed a button battery", "poisoning_overdose"),
        ("she took too many pills", "poisoning_overdose"),
        ("bone sticking out of his leg", "major_trauma_burns"),
        ("fell from a ladder", "major_trauma_burns"),
        ("severe stomach pain and vomiting", "acute_abdomen"),
        ("sudden pain in testicle", "acute_abdomen"),
        # tenth revision: the eight presentations the ninth left to the classifier
        ("my brother says he will kill dad", "harm_to_others"),
        ("husband threatening to stab me", "harm_to_others"),
        ("i am going to kill my neighbour tonight", "harm_to_others"),
        ("bad back and numb between my legs", "cauda_equina"),
        ("sciatica and now cant control my bladder", "cauda_equina"),
        ("back pain, wet myself without knowing", "cauda_equina"),
        ("cant pee since last night, bladder bursting", "urinary_retention"),
        ("dad unable to pass urine 10 hours", "urinary_retention"),
        ("32 weeks pregnant and bleeding", "pregnancy_emergency"),
        ("pregnant, baby not moving since morning", "pregnancy_emergency"),
        ("pregnant bad headache and blurry vision", "pregnancy_emergency"),
        ("bleach splashed in my eye", "eye_emergency"),
        ("bit of metal in my eye from grinding", "eye_emergency"),
        ("sudden eye pain and cant see", "eye_emergency"),
        ("diabetic and shaking, sweating, confused", "diabetic_emergency"),
        ("type 1 sugar very high and vomiting", "diabetic_emergency"),
        ("fell and hit his head, now vomiting", "head_injury"),
        ("grandma banged her head, on blood thinners", "head_injury"),
        ("fever and skin mottled", "sepsis"),
        ("on chemo and have a fever", "sepsis"),
        ("on chemo, high temp and shivering", "sepsis"),
        # eleventh revision: six presentations as short complaints tell them
        ("dad suddenly seeing double and cant walk straight", "stroke"),
        ("my wife suddenly doesnt understand what i say", "stroke"),
        ("granny's mouth is crooked", "stroke"),
        ("half my face numb since 20 minutes", "stroke"),
        ("went blind in one eye just now", "stroke"),
        ("fever, bad headache and the light hurts my eyes", "meningism"),
        ("my girl has a fever and cannot bend her neck", "meningism"),
        ("spots that dont disappear under a glass", "meningism"),
        ("high temp and a rash that wont fade", "meningism"),
        ("husband shaking on the floor over 5 minutes", "seizure"),
        ("son had 2 fits and didnt wake up between", "seizure"),
        ("baby jerking, eyes rolled back", "seizure"),
        ("my mum had a seizure, first time ever", "seizure"),
        ("cant wake my dad up", "altered_consciousness"),
        ("she fainted and hasnt come round", "altered_consciousness"),
        ("grandma suddenly confused, doesnt know me", "altered_consciousness"),
        ("headache came on in seconds, like being hit", "thunderclap_headache"),
        ("sudden massive headache while lifting weights", "thunderclap_headache"),
        ("my head, worst pain ever, never like this", "thunderclap_headache"),
        ("saved up pills to end it tonight", "suicidal"),
        ("my brother says he will kill himself, has a rope", "suicidal"),
        ("cut my wrists an hour ago", "suicidal"),
        # written by a hostile reviewer after reading the eleventh revision's forms
        ("nan doesnt recognise me today", "altered_consciousness"),
        ("grandma really disoriented since this morning", "altered_consciousness"),
        ("son not waking after drinking", "altered_consciousness"),
        ("wrote my goodbye notes", "suicidal"),
        ("i have rope ready", "suicidal"),
        ("kid feverish, rash like bruises spreading fast", "meningism"),
        ("sudden explosion in my head", "thunderclap_headache"),
    ],
)
def test_english_signs_fire(rules_engine, text, flag):
    assert flag in fired_flags(rules_engine, text)


@pytest.mark.parametrize(
    "text",
    [
        "stiff neck from my pillow, no fever",
        "chest pain only when i cough",
        "cant breathe through my nose, blocked",
        "choked on water earlier but fine now",
        "food poisoning i think, keeping fluids down",
        "teenager wont wake up for school",
        "had a seizure years ago, need a refill",
        "no chest pain, just a cough",
        "migraine like my usual ones",
        "my ball hurts after football",
        "fell off my bike, grazed knee",
        "Boğazım ağrıyor, ateşim var",
        # tenth revision
        "my back is killing me",
        "my mum will kill me if i fail",
        "back pain after gardening",
        "cant pee properly, it burns",
        "pregnant and my gums are bleeding",
        "pregnant with morning sickness",
        "eyelash in my eye",
        "eye itchy and red",
        "diabetic, need my insulin prescription",
        "shaky if i skip breakfast, not diabetic",
        "toddler bumped his head, playing normally",
        "bumped head, no vomiting",
        "fever and cough for two days",
        # vomiting is not a fever: a patient on chemotherapy who is sick is not sepsis by the rules
        "on chemo and vomiting",
        "chemo, feeling sick and vomiting",
        # eleventh revision: the same words with no onset, a fever denied, a known or everyday cause
        "cant walk straight after leg day",
        "my husband doesnt understand what i say, we argue",
        "double vision when tired, for years",
        "migraine, light hurts my eyes",
        "hay fever, headache and light hurts my eyes",
        "acne spots that dont fade",
        "rash fades under a glass, no fever",
        "fits of coughing for 10 minutes",
        "eye twitching for 10 minutes",
        "epileptic, had my usual seizure, 1 minute, fine now",
        "very sleepy after night shift and my son is not answering my texts",
        "grandma with dementia confused, doesnt know me",
        "my dad has been confused for months",
        "confused about which tablets to take",
        "my head is pounding like a hammer, hangover",
        "my head is exploding with this cold",
        "this is the worst ever flu, headache",
        "should i take them all at once, antibiotics",
        "cut my wrist on a broken glass",
        "want to end things with my girlfriend",
        # the hostile reviewer's look-alikes of the eleventh revision's forms
        "face numb from dentist an hour ago",
        "cant walk straight right now so drunk",
        "i dont understand what my doctor said right now",
        "so hot today headache and light hurts my eyes",
        "acne spots dont go away when i press them",
        "did the glass test, rash went pale",
        "had a fit of coughing cant stop",
        "my dog had a seizure first time",
        "cant wake my laptop from sleep mode",
        "she has not come round to the idea of surgery",
        "i keep passing out on the sofa after night shift",
        "my head coach is the worst ever",
        "collected pills from the pharmacy today",
        "thinking of ending things with my boyfriend",
        "he will kill himself laughing at this",
        "our gym has a rope climb",
        "cut my wrists on broken glass washing up, small cuts",
        "self harmed as a teenager, doing well now",
        "i could kill myself for forgetting my keys",
        "i just want to die of embarrassment",
        "cant wake my son for school",
    ],
)
def test_english_look_alikes_stay_quiet(rules_engine, text):
    assert not fired_flags(rules_engine, text)


def test_a_threat_to_oneself_is_not_a_threat_to_others(rules_engine):
    assert fired_flags(rules_engine, "i want to kill myself") == {"suicidal"}
