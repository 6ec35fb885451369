from project.web.models import Note
from rest_framework import serializers


class NoteSerializer(serializers.ModelSerializer):
    class Meta:
        model = Note
        fields = ["id", "title", "body"]

    def validate_title(self, value):
        if value.strip().lower() == "invalid":
            raise serializers.ValidationError("not a title")
        return value


class EchoSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=10)
