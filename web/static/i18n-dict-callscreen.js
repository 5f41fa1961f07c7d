// Texts of the call screen made for a worried, non-technical person, in French and English
// (merged by i18n-dict.js): what the other participant turned off (call-peer-state.js), the
// privacy line and its details (call-privacy.js), the optional security code check
// (call-panels.js, call-code.js).
// French never assumes a gender ("a coupé son micro" whoever it is).
export const CALLSCREEN = {
  fr: {
    "peerstate.mic_off": "{name} a coupé son micro",
    "peerstate.camera_off": "{name} a coupé sa caméra",
    "peerstate.both_off": "{name} a coupé sa caméra et son micro",
    "callscreen.private": "Votre appel est privé : chiffré de bout en bout",
    "callscreen.private_how": "L'image et le son sont chiffrés sur votre appareil et ne sont déchiffrés que sur celui de la personne avec qui vous parlez. Notre service ne fait que mettre les deux appareils en relation.",
    "callscreen.private_tech": "Détails techniques : DTLS-SRTP, chiffrement {cipher}.",
    "callscreen.code_summary": "Vérifier ensemble (facultatif)",
    "callscreen.code_how": "Si vous le souhaitez, lisez ce code à voix haute : la personne avec qui vous parlez voit le même sur son écran.",
    "callscreen.code_label": "Code :",
    "callscreen.code_why": "Le même code des deux côtés confirme que personne ne se trouve entre vous. C'est presque toujours le cas ; si un jour ils différaient, mettez fin à l'appel et reprenez contact par téléphone.",
  },
  en: {
    "peerstate.mic_off": "{name} has turned their microphone off",
    "peerstate.camera_off": "{name} has turned their camera off",
    "peerstate.both_off": "{name} has turned their camera and microphone off",
    "callscreen.private": "Your call is private: encrypted from end to end",
    "callscreen.private_how": "Picture and sound are encrypted on your device and only decrypted on the device of the person you are talking to. Our service only puts the two devices in touch.",
    "callscreen.private_tech": "Technical details: DTLS-SRTP, cipher {cipher}.",
    "callscreen.code_summary": "Check together (optional)",
    "callscreen.code_how": "If you like, read this code aloud: the person you are talking to sees the same one on their screen.",
    "callscreen.code_label": "Code:",
    "callscreen.code_why": "The same code on both sides confirms that nobody is between you. That is almost always so; if they ever differed, end the call and get back in touch by phone.",
  },
};
